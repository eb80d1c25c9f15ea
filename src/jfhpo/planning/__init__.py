"""Pure planners over a study's stored state: no processes, no files, no clocks.

``ledger``      the budget: spent, committed, what can still be paid (one formula for everyone)
``confirm``     which configurations the confirmation stage trains on the target, and retries
``resume``      which stored decisions still have to be carried out (after a crash or a failure)
``retention``   which checkpoints to release (runs that cannot grow; the disk budget)

The tuner, ``Study.view`` and ``AskTell`` call them; each has its own in-process unit tests.
"""
