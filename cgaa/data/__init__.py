"""Training data: labelled frames as model inputs with residual labels over the model's prior
(:mod:`cgaa.data.dataset`) and the closest inter-grain contacts of a data set
(:mod:`cgaa.data.contacts`). The extxyz frame format itself is :mod:`cgaa.core.extxyz`.

May import :mod:`cgaa.core` and :mod:`cgaa.priors`.
"""
