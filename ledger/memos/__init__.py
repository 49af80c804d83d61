"""The MemOS layer: cubes (and their verifiable export), the memory scheduler, chat and fact extraction."""
