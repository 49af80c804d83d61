"""Stream consumers: run projections out of process, exactly once through each view's checkpoint.

One lease-holder per view on a single log (``runner``); on a partitioned log, a consumer group whose
members divide the view's partitions, each with its own checkpoint (``group_member``).
"""
