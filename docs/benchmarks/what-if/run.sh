#!/bin/bash
# what each architecture change buys: untrained models, 1000 atoms, 1 thread, idle machine
set -e
c="cgaa bench speed --sizes 1000 --engines cgaa --model untrained --threads 1 --repeats 60 --md-steps 200 --budget 15"
$c --set intra_lmax=1 --set intra_cutoff=4 --set intra_num_basis=16 --out what-if/equivariant-4A
$c --set intra_lmax=0 --set intra_cutoff=4 --set intra_num_basis=16 --out what-if/invariant-4A
$c --out what-if/shipped
$c --set intra_layers=0 --out what-if/no-intra
$c --set pair_cutoff=4 --out what-if/shipped-pair4
$c --set pair_cutoff=0 --out what-if/shipped-nopair
cgaa bench speed --sizes 1000 --engines cgaa,teacher --threads 1 --repeats 60 --md-steps 200 --budget 15 --out what-if/shipped-trained
