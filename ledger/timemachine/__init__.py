"""The time machine: branches (counterfactual logs over main), restore, audit and provenance."""
