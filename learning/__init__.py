"""maskloop's ML core: plain PyTorch and numpy, no Django below tasks.py/services.py.

Importing this package is cheap on purpose (no torch): the web process imports
``learning.tasks`` through Celery autodiscovery and must not pay for torch.
"""
