"""Every state change of the annotator app happens in exactly one function here.

Services are named ``<entity>_<action>``, take keyword-only arguments and run in
a transaction with the check that makes them safe.
"""
