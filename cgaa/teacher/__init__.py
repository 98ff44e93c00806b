"""Teachers and labels: the classical teacher force field (:mod:`cgaa.teacher.forcefield`),
teacher MD sampling (:mod:`cgaa.teacher.sample`, ``cgaa sample``) and relabelling frames with any
ASE calculator (:mod:`cgaa.teacher.label`, ``cgaa label``).

May import :mod:`cgaa.core`, :mod:`cgaa.systems` and :mod:`cgaa.core.extxyz`.
"""
