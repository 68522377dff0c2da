"""The built-in ladder stages, one module each (registered in validate/registry.py)."""
