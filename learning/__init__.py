"""maskloop's ML core: plain PyTorch and numpy; tasks.py (Celery) is the only module that imports Django.

Importing this package is cheap on purpose (no torch): the web process imports
``learning.tasks`` through Celery autodiscovery and must not pay for torch.
"""
