"""Recommenders: one interface (fit, recommend, save, load) over plain data, no HTTP."""
