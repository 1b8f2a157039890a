"""The HTTP side of ``watch``: the app, its server thread and batch tasks."""
