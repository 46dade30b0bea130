"""Fails to import: forqd must refuse to start, with the traceback in its log."""


def helper():
    return 1 / 0


VALUE = helper()
