"""The built-in plugins. Each module is an ordinary plugin, loaded through the ``dstbench``
entry-point group like any third-party one.
"""
