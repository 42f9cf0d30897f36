"""Broken versions of the example adapter, each caught by the contract kit (test_kit_mutants).

One module per mutant, each a subclass of the example's ``AktenablageAdapter`` named
``Mutant`` that breaks one rule, and ``CAUGHT_BY``: the kit test that must fail for it.
A new check in the kit comes with its mutant here.
"""
