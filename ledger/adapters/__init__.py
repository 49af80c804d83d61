"""Framework adapters over the client API (each behind its own optional extra):
``langgraph_store`` (``pip install memledger[langgraph]``) and ``langchain_retriever``
(``pip install memledger[langchain]``)."""
