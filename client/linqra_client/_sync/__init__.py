# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.
