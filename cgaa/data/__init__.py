"""Datasets: reading/writing labelled frames (extxyz) and, later, training datasets.

Kept light on purpose: import the submodules you need, e.g. ``cgaa.data.extxyz``.
"""
