"""Wiring only: kopf watches, a due-time scheduler, and the code that carries out decisions.

No rule lives here. Every decision comes from `policy`; this package gathers its inputs (the
object, its grant, the clock), persists what it decides (status, finalizers, Events) and
performs IAM changes through `iam`.
"""
