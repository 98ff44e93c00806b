"""The CGAA model: equivariant message passing on grains, all-atom forces out.

Data flow of :meth:`CGAAModel.forward` (units: Å, eV, eV/Å):

1. grain centres R_G: mass-weighted centre of each grain after unwrapping its atoms by
   minimum image relative to the grain's first atom, so wrapped and unwrapped inputs
   give the same answer; u_i = r_i − R_G.
2. grain embedding: atom features from the element, refined by ``intra_layers``
   equivariant convolutions over atom pairs inside each grain (vectors r_j − r_i built
   from the unwrapped u, so periodic images never matter), then pooled onto the grain by
   a convolution over the centre-relative vectors u_i, plus a grain-type embedding.
   Sums over atoms: no fixed atom slots, identical atoms are interchangeable.
3. ``num_layers`` inter-grain interaction layers over grain pairs within ``cutoff``
   (polynomial envelope, so energy and forces are smooth); O(N) cell-list search.
4. per-grain energy E_G = scale·MLP(scalars) + E_ref[type]; E = Σ_G E_G.
   Optional (``pair_cutoff`` > 0): a learned short-range contact term between atoms of
   *different* grains, E_ij = scale·Σ_k φ_k(r_ij)·⟨A_k x_i, A_k x_j⟩ (Gaussian basis φ with
   a smooth envelope; x the atoms' chemistry-aware scalar features from step 2), half to
   each atom's grain. Grain-centre messages cannot resolve which atoms of two molecules
   touch; this term can, at the cost of one atom-pair list (it is a pair potential with
   learned, environment-dependent coefficients: no tensor products).
   Optional (``atom_energy``): an atom-centred energy E_i = scale·MLP(scalars of x_i) added to
   each atom's grain, x_i the atom features after the intra-grain layers. The pooled grain
   features alone squeeze a molecule's whole internal geometry through ``channels`` scalars;
   this term gives its internal energy the form of an atomistic MLIP inside the grain
   (2-body with one intra-grain layer, 3-body and up with two or more), at one MLP per atom.
5. forces, both modes returning total, inter-grain and intra-grain parts with
   F_i = (m_i/M_G)·F_G^inter + F_i^intra and Σ_{i∈G} F_i^intra = 0:
   * ``conservative``: F = −∂E/∂r by autograd, decomposed by projection;
   * ``direct``: F_G^inter = −∂E/∂R_G (u held fixed), F^intra from an equivariant
     per-atom head, mean-subtracted per grain.

With every atom its own grain (``cgaa.core.grains.atomic_grains``) the same network is an
ordinary all-atom equivariant MLIP: the baseline of the benchmarks.

Masses are the model's own per-element table (not the simulation's), so the energy is a
fixed function of positions even with hydrogen-mass repartitioning in OpenMM.
"""
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import torch
from e3nn import o3
from torch import Tensor, nn

from cgaa.core.neighbors import box_heights, neighbor_pairs
from cgaa.core.nn.blocks import MLP, Convolution, Gate, hidden_irreps
from cgaa.core.nn.radial import GaussianBasis, PolynomialEnvelope, safe_direction
from cgaa.core.priorspec import check_prior

FORCE_MODES = ("conservative", "direct")


@dataclass
class ModelConfig:
    """Hyper-parameters and vocabulary of a CGAA model (lengths in Å).

    Attributes
    ----------
    elements: atomic numbers the model knows (its species vocabulary, in index order).
    grain_types: chemistry keys of the grain types it knows (see cgaa.core.grains).
    grain_type_names: readable names of those types, same order.
    masses: per-element masses (Da) used for grain centres; default: ASE's table.
    cutoff: inter-grain cutoff between grain centres (Å).
    num_layers: inter-grain interaction layers.
    channels: multiplicity of each irrep (0e, 1o, 2e, ...).
    lmax: highest spherical-harmonic order.
    num_basis: radial basis functions.
    radial_hidden: width of the radial weight MLPs.
    intra_layers: atom-level convolutions inside each grain before pooling (0: pool directly).
    intra_cutoff: cutoff of intra-grain atom pairs (Å).
    intra_lmax: highest irrep order of the intra-grain layers (−1: ``lmax``). 0 makes them
      invariant (distance-only) convolutions, ~3× cheaper: atoms then learn their chemical
      environment (carbonyl vs ether O, ...) and the pooling alone carries directions.
    intra_num_basis: radial basis functions of intra-grain pairs (finer than the inter-grain
      basis: bond stretches are stiff).
    embed_radius: range of the radial basis of centre-relative vectors u_i (Å).
    center_eps: softening length of the direction of u_i (Å), keeps atoms at the centre smooth.
    force_mode: ``"conservative"`` (F = −∂E/∂r) or ``"direct"``.
    avg_neighbors: normalisation of the inter-grain sums (typical neighbours per grain).
    avg_intra_neighbors: normalisation of the intra-grain pair sums.
    avg_grain_size: normalisation of the pooling sum (typical atoms per grain).
    all_atom: informational: True for the all-atom baseline (every atom a grain).
    pair_cutoff: cutoff (Å) of the learned atom-pair contact term between atoms of different
      grains (0: no such term).
    pair_num_basis: radial basis functions of the contact term.
    pair_rank: rank of the learned pair coefficients ⟨A_k x_i, A_k x_j⟩.
    avg_pair_neighbors: normalisation of the contact sums (typical contacts per atom).
    atom_energy: add an atom-centred energy term read from the intra-grain atom features
      (richer intramolecular surface; modules exist only when True, so older model files keep
      their state-dict keys).
    prior: classical prior the model is a residual over (``"none"`` or a name in
      :data:`cgaa.priors.PRIORS`); users of the model add it back (see :mod:`cgaa.priors`).
    contact_floor: ``[[Z1, Z2, d_min Å], ...]``, the closest approach of atoms of different
      grains per element pair in the training data (set by training, see
      :mod:`cgaa.data.contacts`; empty: unknown). Not used by the network: MD puts a
      repulsive wall just inside it (``cgaa.openmm.guards.add_contact_guard``).
    """

    elements: List[int]
    grain_types: List[str]
    grain_type_names: List[str] = field(default_factory=list)
    masses: List[float] = field(default_factory=list)
    cutoff: float = 8.0
    num_layers: int = 2
    channels: int = 16
    lmax: int = 2
    num_basis: int = 8
    radial_hidden: int = 32
    intra_layers: int = 1
    intra_cutoff: float = 4.0
    intra_lmax: int = -1
    intra_num_basis: int = 16
    embed_radius: float = 5.0
    center_eps: float = 0.5
    force_mode: str = "conservative"
    avg_neighbors: float = 20.0
    avg_intra_neighbors: float = 8.0
    avg_grain_size: float = 8.0
    all_atom: bool = False
    pair_cutoff: float = 0.0
    pair_num_basis: int = 8
    pair_rank: int = 4
    avg_pair_neighbors: float = 30.0
    atom_energy: bool = False
    prior: str = "none"
    contact_floor: List[List[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.elements = [int(z) for z in self.elements]
        self.atom_energy = bool(self.atom_energy)
        self.grain_types = [str(k) for k in self.grain_types]
        if not self.grain_type_names:
            self.grain_type_names = list(self.grain_types)
        if not self.masses:
            from ase.data import atomic_masses

            self.masses = [float(atomic_masses[z]) for z in self.elements]
        problems = []
        if not self.elements:
            problems.append("elements is empty")
        if len(set(self.elements)) != len(self.elements):
            problems.append("elements has duplicates")
        if not self.grain_types:
            problems.append("grain_types is empty")
        if len(set(self.grain_types)) != len(self.grain_types):
            problems.append("grain_types has duplicates")
        if len(self.grain_type_names) != len(self.grain_types):
            problems.append("grain_type_names must match grain_types")
        if len(self.masses) != len(self.elements):
            problems.append("masses must give one mass per element")
        try:

            self.prior = check_prior(self.prior)
        except ValueError as err:
            problems.append(str(err))
        if self.force_mode not in FORCE_MODES:
            problems.append(f"force_mode must be one of {FORCE_MODES}, not {self.force_mode!r}")
        for name in ("cutoff", "intra_cutoff", "embed_radius", "center_eps", "avg_neighbors",
                     "avg_intra_neighbors", "avg_grain_size"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0")
        if self.pair_cutoff < 0 or self.avg_pair_neighbors <= 0:
            problems.append("pair_cutoff must be ≥ 0 and avg_pair_neighbors > 0")
        for name in ("num_layers", "channels", "num_basis", "intra_num_basis", "radial_hidden",
                     "pair_num_basis", "pair_rank"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be ≥ 1")
        if self.lmax < 0 or self.intra_layers < 0:
            problems.append("lmax and intra_layers must be ≥ 0")
        if not -1 <= self.intra_lmax <= self.lmax:
            problems.append(f"intra_lmax must be -1 (= lmax) or 0..lmax ({self.lmax}), not {self.intra_lmax}")
        floor = []
        for entry in self.contact_floor:
            if len(entry) != 3 or not float(entry[2]) > 0:
                problems.append(f"contact_floor entries must be [Z1, Z2, d_min Å > 0], not {list(entry)}")
                continue
            floor.append([int(entry[0]), int(entry[1]), float(entry[2])])
        self.contact_floor = floor
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a dict, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d)


def intra_pairs(grain_index: Tensor, n_grains: int) -> Tensor:
    """All ordered atom pairs (i, j), i ≠ j, of the same grain: (2, E) int64.

    Cost O(N · largest grain size).
    """
    n = grain_index.shape[0]
    counts = torch.bincount(grain_index, minlength=n_grains)
    maxc = int(counts.max())
    if maxc < 2:
        return torch.zeros((2, 0), dtype=torch.long, device=grain_index.device)
    order = torch.argsort(grain_index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    k = torch.arange(maxc, device=grain_index.device)
    slot = starts[grain_index].unsqueeze(1) + k
    valid = k < counts[grain_index].unsqueeze(1)
    j = order[torch.clamp(slot, max=n - 1)]
    i = torch.arange(n, device=grain_index.device).unsqueeze(1).expand_as(j)
    valid = valid & (i != j)
    return torch.stack([i[valid], j[valid]])


def grain_centers(pos: Tensor, m: Tensor, grain_index: Tensor, n_grains: int,
                  cell: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Grain centres R (G,3, Å), centre-relative vectors u = r − R_G (N,3, Å) and grain masses (G,).

    Centres are mass-weighted (atom masses ``m``) after unwrapping each grain's atoms by
    minimum image relative to its first atom, so wrapped and unwrapped positions give the
    same u (exact for grains narrower than half the box height)."""
    n = pos.shape[0]
    mg = torch.zeros(n_grains, dtype=pos.dtype, device=pos.device).index_add(0, grain_index, m)
    ref = torch.full((n_grains,), n, dtype=torch.long, device=pos.device).scatter_reduce(
        0, grain_index, torch.arange(n, device=pos.device), reduce="amin")
    d = pos - pos[ref][grain_index]
    if cell is not None:
        inv = torch.linalg.inv_ex(cell.detach())[0]  # no error check: no host sync (the cell is checked on input)
        d = d - torch.round(d.detach() @ inv) @ cell
    c = torch.zeros((n_grains, 3), dtype=pos.dtype, device=pos.device).index_add(
        0, grain_index, m.unsqueeze(1) * d) / mg.unsqueeze(1)
    return pos[ref] + c, d - c[grain_index], mg


def masked_shifts(points: Tensor, pairs: Tensor, mask: Tensor, cell: Tensor) -> Tensor:
    """Integer lattice shifts (E, 3) making ``points[j] − points[i] + shift·cell`` the minimum
    image (fractional rounding) of each pair (i, j) of ``pairs`` (2, E), and (1, 0, 0) where
    ``mask`` is False (a padded entry: with i = j its vector is the first box vector, longer
    than twice any allowed cutoff). No gradient flows through the shifts.

    Fractional rounding finds the image closer than the cutoff whenever one exists: a vector d
    with |d| < h_min/2 has |d·b_k| < 1/2 for every reciprocal vector b_k. So shifts need not be
    stored between neighbour-list rebuilds, and positions that OpenMM wraps are harmless."""
    d = (points[pairs[1]] - points[pairs[0]]).detach()
    inv = torch.linalg.inv_ex(cell.detach())[0]
    s = -torch.round(d @ inv)
    pad = torch.zeros_like(s)
    pad[:, 0] = 1.0
    return torch.where(mask.unsqueeze(1), s, pad)


class InteractionBlock(nn.Module):
    """Convolution + self-connection → gate, with a residual connection."""

    def __init__(self, irreps: o3.Irreps, irreps_sh: o3.Irreps, num_basis: int, hidden: int, norm: float):
        super().__init__()
        self.gate = Gate(irreps)
        self.conv = Convolution(irreps, irreps_sh, self.gate.irreps_in, num_basis, hidden, norm)
        self.self_connection = o3.Linear(irreps, self.gate.irreps_in)

    def forward(self, x: Tensor, sh: Tensor, basis: Tensor, envelope: Tensor,
                sender: Tensor, receiver: Tensor) -> Tensor:
        y = self.conv(x, sh, basis, envelope, sender, receiver, x.shape[0]) + self.self_connection(x)
        return x + self.gate(y)


class CGAAModel(nn.Module):
    """Coarse-grained all-atom equivariant model (TorchScript-compatible).

    Build from a :class:`ModelConfig`; call with atom positions (Å), the model's species
    index of each atom, the grain index of each atom, the model's grain-type index of each
    grain and an optional box (3×3 Å, rows are box vectors). Returns a dict with
    ``energy`` (eV, 0-d), ``grain_energies`` (eV, per grain) and, with
    ``compute_forces``, ``forces``, ``forces_inter``, ``forces_intra`` (eV/Å, per atom)
    and ``grain_forces`` (eV/Å, net force per grain). With ``compute_virial`` (and a box)
    also ``virial_mol`` = −∂E/∂ε (3×3, eV) for a homogeneous strain ε of the grain centres
    and the box with every grain's internal geometry u held fixed — the *molecular* virial,
    which with the grains' kinetic energy gives the pressure a barostat acts on — and the
    ordinary atomic ``virial`` = virial_mol + Σ_i F_i ⊗ u_i (eV; stress = −virial/V).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.cutoff = float(c.cutoff)
        self.intra_cutoff = float(c.intra_cutoff)
        self.center_eps = float(c.center_eps)
        self.direct = c.force_mode == "direct"
        self.n_species = len(c.elements)
        self.n_types = len(c.grain_types)
        self.channels = int(c.channels)
        self.register_buffer("masses", torch.tensor(c.masses, dtype=torch.get_default_dtype()))
        self.register_buffer("atomic_numbers", torch.tensor(c.elements, dtype=torch.long))
        # per-grain-type reference energies (eV) and the energy scale (eV); set by training
        self.register_buffer("type_energy", torch.zeros(self.n_types))
        self.register_buffer("energy_scale", torch.ones(()))

        irreps_h = hidden_irreps(c.channels, c.lmax)
        irreps_sh = o3.Irreps.spherical_harmonics(c.lmax)
        self.irreps_hidden = str(irreps_h)
        self.sh = o3.SphericalHarmonics(irreps_sh, normalize=False, normalization="component")
        self.element_embedding = nn.Embedding(self.n_species, c.channels)

        # intra-grain atom-level layers
        self.intra_basis = GaussianBasis(c.intra_cutoff, c.intra_num_basis)
        self.intra_envelope = PolynomialEnvelope(c.intra_cutoff)
        atom_irreps = o3.Irreps(f"{c.channels}x0e")
        intra_lmax = c.lmax if c.intra_lmax < 0 else int(c.intra_lmax)
        irreps_intra = hidden_irreps(c.channels, intra_lmax)
        self.intra_sh_dim = (intra_lmax + 1) ** 2  # leading components of the sh of lmax
        intra: List[nn.Module] = []
        for _ in range(c.intra_layers):
            gate = Gate(irreps_intra)
            intra.append(nn.ModuleDict({
                "conv": Convolution(atom_irreps, o3.Irreps.spherical_harmonics(intra_lmax), gate.irreps_in,
                                    c.intra_num_basis, c.radial_hidden, c.avg_intra_neighbors),
                "self": o3.Linear(atom_irreps, gate.irreps_in),
                "gate": gate,
            }))
            atom_irreps = irreps_intra
        self.intra_layers = nn.ModuleList(intra)
        self.n_intra = len(intra)

        # pooling atoms → grain over centre-relative vectors, then type embedding
        self.embed_basis = GaussianBasis(c.embed_radius, c.num_basis)
        self.pool = Convolution(atom_irreps, irreps_sh, irreps_h, c.num_basis, c.radial_hidden,
                                c.avg_grain_size)
        self.type_embedding = nn.Embedding(self.n_types, c.channels)

        # inter-grain layers
        self.inter_basis = GaussianBasis(c.cutoff, c.num_basis)
        self.inter_envelope = PolynomialEnvelope(c.cutoff)
        self.layers = nn.ModuleList([
            InteractionBlock(irreps_h, irreps_sh, c.num_basis, c.radial_hidden, c.avg_neighbors)
            for _ in range(c.num_layers)
        ])
        self.readout = MLP([c.channels, c.channels, 1])
        # optional atom-pair contact term between grains
        # (modules exist only when enabled: models without the term keep their state-dict keys)
        self.pair_cutoff = float(c.pair_cutoff)
        self.pair_k = int(c.pair_num_basis)
        self.pair_m = int(c.pair_rank)
        self.pair_norm = float(c.avg_pair_neighbors)
        if self.pair_cutoff > 0.0:
            self.pair_basis = GaussianBasis(self.pair_cutoff, self.pair_k)
            self.pair_envelope = PolynomialEnvelope(self.pair_cutoff)
            self.pair_coeff = nn.Linear(c.channels, self.pair_k * self.pair_m, bias=True)
        # optional atom-centred energy from the intra-grain atom features
        if c.atom_energy:
            self.atom_readout = MLP([c.channels, c.channels, 1])
            with torch.no_grad():  # starts at zero: an untrained model equals one without the term
                self.atom_readout.net[-1].weight.zero_()
        # direct mode: per-atom intra-grain force head (present in both modes for TorchScript)
        self.intra_head = o3.FullyConnectedTensorProduct(irreps_h, atom_irreps, "1x1o")

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, pos: Tensor, species: Tensor, grain_index: Tensor,
                      grain_type: Tensor, cell: Optional[Tensor]) -> None:
        n = pos.shape[0]
        if n == 0:
            raise RuntimeError("empty system: no atoms")
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise RuntimeError("positions must have shape (n_atoms, 3)")
        bad = torch.nonzero(~torch.isfinite(pos).all(dim=1))
        if bad.shape[0] > 0:
            raise RuntimeError("non-finite (NaN or inf) position at atom " + str(int(bad[0, 0])))
        if species.shape[0] != n or grain_index.shape[0] != n:
            raise RuntimeError("species and grain_index need one entry per atom ("
                               + str(n) + " atoms)")
        if int(species.min()) < 0 or int(species.max()) >= self.n_species:
            a = int(torch.nonzero((species < 0) | (species >= self.n_species))[0, 0])
            raise RuntimeError("atom " + str(a) + " has species index " + str(int(species[a]))
                               + " outside the model's " + str(self.n_species) + " elements")
        g = grain_type.shape[0]
        if g == 0:
            raise RuntimeError("empty system: no grains")
        if int(grain_index.min()) < 0 or int(grain_index.max()) >= g:
            a = int(torch.nonzero((grain_index < 0) | (grain_index >= g))[0, 0])
            raise RuntimeError("atom " + str(a) + " has grain index " + str(int(grain_index[a]))
                               + " but there are " + str(g) + " grains")
        if int(torch.bincount(grain_index, minlength=g).min()) == 0:
            e = int(torch.nonzero(torch.bincount(grain_index, minlength=g) == 0)[0, 0])
            raise RuntimeError("grain " + str(e) + " has no atoms")
        if int(grain_type.min()) < 0 or int(grain_type.max()) >= self.n_types:
            e = int(torch.nonzero((grain_type < 0) | (grain_type >= self.n_types))[0, 0])
            raise RuntimeError("grain " + str(e) + " has type index " + str(int(grain_type[e]))
                               + " outside the model's " + str(self.n_types) + " grain types")
        if cell is not None:
            if cell.shape[0] != 3 or cell.shape[1] != 3:
                raise RuntimeError("cell must be a 3x3 matrix (rows are box vectors)")
            if not bool(torch.isfinite(cell).all()) or abs(float(torch.dot(cell[0], torch.linalg.cross(cell[1], cell[2])))) < 1e-12:
                raise RuntimeError("cell is singular or not finite")
            h = float(box_heights(cell).min())
            if not self.cutoff < 0.5 * h:
                raise RuntimeError("model cutoff " + str(self.cutoff) + " A is not below half the "
                                   + "shortest box height (" + str(0.5 * h) + " A): use a larger box")

    # ------------------------------------------------------------------ geometry
    def grain_geometry(self, pos: Tensor, species: Tensor, grain_index: Tensor, n_grains: int,
                       cell: Optional[Tensor], pairs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Grain centres R (G,3), centre-relative vectors u (N,3), atom masses (N,), grain masses (G,).

        pairs: the intra-grain atom pairs (:func:`intra_pairs`), if already built."""
        m = self.masses[species]
        r, u, mg = grain_centers(pos, m, grain_index, n_grains, cell)
        if cell is not None:
            # Unwrapping by rounding is exact for a grain narrower than half the box height;
            # a grain that is wider (or was unwrapped to the wrong image) shows a large extent.
            h = float(box_heights(cell).min())
            if pairs is None:
                pairs = intra_pairs(grain_index, n_grains)
            if pairs.shape[1] > 0:
                dd = u.detach()
                sep = torch.linalg.norm(dd[pairs[1]] - dd[pairs[0]], dim=1)
                k = int(torch.argmax(sep))
                if float(sep[k]) >= 0.5 * h:
                    a = int(pairs[0, k])
                    raise RuntimeError("grain " + str(int(grain_index[a])) + " (atoms " + str(a) + " and "
                                       + str(int(pairs[1, k])) + ", " + str(float(sep[k])) + " A apart) is wider "
                                       + "than half the shortest box height (" + str(0.5 * h)
                                       + " A): its atoms cannot be unwrapped uniquely")
        return r, u, m, mg

    # ------------------------------------------------------------------ network
    def energy_from_geometry(self, r: Tensor, u: Tensor, species: Tensor, grain_index: Tensor,
                             grain_type: Tensor, cell: Optional[Tensor],
                             pairs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-grain energies (eV) from grain centres ``r`` and centre-relative vectors ``u``.

        Finds the edges (:meth:`edges`) and evaluates the network on them
        (:meth:`energy_from_edges`). pairs: the intra-grain atom pairs (:func:`intra_pairs`),
        if already built. Returns (grain energies (G,), final grain features, final atom features).
        """
        intra, inter, inter_shifts, contact, contact_shifts = self.edges(r, u, grain_index, grain_type.shape[0],
                                                                         cell, pairs)
        return self.energy_from_edges(r, u, species, grain_index, grain_type, cell, intra, inter, inter_shifts,
                                      contact, contact_shifts)

    def edges(self, r: Tensor, u: Tensor, grain_index: Tensor, n_grains: int, cell: Optional[Tensor],
              pairs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The graph the network runs on, found from the geometry (no gradients flow through it):

        * intra-grain atom pairs within ``intra_cutoff``, each once (i < j), (2, Ei);
        * grain-centre pairs within ``cutoff``, both orders, (2, Eg), and their integer lattice
          shifts (Eg, 3);
        * atom pairs of different grains within ``pair_cutoff`` (the contact term), each once,
          (2, Ec), and their shifts (Ec, 3).

        Sets that a model does not use are empty. Separated from :meth:`energy_from_edges` so that
        the edges can be built elsewhere (e.g. padded to a fixed size for CUDA graphs).
        """
        dev = u.device
        intra = torch.zeros((2, 0), dtype=torch.long, device=dev)
        if self.n_intra > 0:
            if pairs is None:
                pairs = intra_pairs(grain_index, n_grains)
            ud = u.detach()  # select the pairs first: autograd then only sees those in range
            dd = ud[pairs[1]] - ud[pairs[0]]
            intra = pairs[:, (pairs[0] < pairs[1]) & ((dd * dd).sum(-1) < self.intra_cutoff * self.intra_cutoff)]
        inter, inter_shifts = neighbor_pairs(r, cell, self.cutoff)
        contact = torch.zeros((2, 0), dtype=torch.long, device=dev)
        contact_shifts = torch.zeros((0, 3), dtype=u.dtype, device=dev)
        if self.pair_cutoff > 0.0:
            p = r[grain_index] + u
            cp, cs = neighbor_pairs(p, cell, self.pair_cutoff, False)  # each pair once
            keep = grain_index[cp[0]] != grain_index[cp[1]]
            contact, contact_shifts = cp[:, keep], cs[keep]
        return intra, inter, inter_shifts, contact, contact_shifts

    def energy_from_edges(self, r: Tensor, u: Tensor, species: Tensor, grain_index: Tensor, grain_type: Tensor,
                          cell: Optional[Tensor], intra: Tensor, inter: Tensor, inter_shifts: Tensor,
                          contact: Tensor, contact_shifts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-grain energies (eV), final grain features and final atom features on given edges
        (:meth:`edges` says what each set holds). Vectors are rebuilt from ``r``, ``u`` and the
        shifts with autograd, so forces flow through them; the index sets carry no gradient."""
        n = u.shape[0]
        g = grain_type.shape[0]
        x = self.element_embedding(species)
        # intra-grain atom-level convolutions
        if self.n_intra > 0:
            # each pair once for the distances and radial weights, then both directions
            dirs, dist = safe_direction(u[intra[1]] - u[intra[0]], 1e-6)
            both = torch.cat([intra, intra.flip(0)], dim=1)
            sh = self.sh(torch.cat([dirs, -dirs], dim=0))[:, : self.intra_sh_dim]
            basis = self.intra_basis(dist)
            env = self.intra_envelope(dist)
            for layer in self.intra_layers:
                y = layer["conv"](x, sh, basis, env, both[1], both[0], n, True) + layer["self"](x)
                x = layer["gate"](y)
        # pool atoms onto their grain
        dirs, dist = safe_direction(u, self.center_eps)
        h = self.pool(x, self.sh(dirs), self.embed_basis(dist), torch.ones_like(dist),
                      torch.arange(n, device=u.device), grain_index, g)
        t = self.type_embedding(grain_type)
        h = torch.cat([h[:, : self.channels] + t, h[:, self.channels:]], dim=1)
        # inter-grain message passing
        vec = r[inter[1]] - r[inter[0]]
        if cell is not None:
            vec = vec + inter_shifts @ cell
        dirs, dist = safe_direction(vec, 1e-6)
        sh = self.sh(dirs)
        basis = self.inter_basis(dist)
        env = self.inter_envelope(dist)
        for layer in self.layers:
            h = layer(h, sh, basis, env, inter[1], inter[0])
        e = self.readout(h[:, : self.channels]).squeeze(-1)
        if hasattr(self, "pair_coeff"):  # TorchScript compiles this branch only when it exists
            e = e + self.contact_energies(r, u, x, grain_index, g, cell, contact, contact_shifts)
        if hasattr(self, "atom_readout"):  # compiled only when the term exists
            ea = self.atom_readout(x[:, : self.channels]).squeeze(-1)
            e = e.index_add(0, grain_index, ea)
        e = e * self.energy_scale + self.type_energy[grain_type]
        return e, h, x

    def contact_energies(self, r: Tensor, u: Tensor, x: Tensor, grain_index: Tensor, n_grains: int,
                         cell: Optional[Tensor], pairs: Optional[Tensor] = None,
                         shifts: Optional[Tensor] = None) -> Tensor:
        """Per-grain sums (before ``energy_scale``) of the atom-pair contact term between atoms
        of different grains within ``pair_cutoff``; each pair's energy is split between the
        two atoms' grains. Atom positions are rebuilt as r_G + u_i, so the term is periodic
        and translation-invariant like the rest of the model. pairs, shifts: those atom pairs
        (each once) and their lattice shifts, if already found (:meth:`edges`)."""
        p = r[grain_index] + u
        if pairs is None or shifts is None:
            found, sh = neighbor_pairs(p, cell, self.pair_cutoff, False)  # each pair once
            keep = grain_index[found[0]] != grain_index[found[1]]
            pairs, shifts = found[:, keep], sh[keep]
        vec = p[pairs[1]] - p[pairs[0]]
        if cell is not None:
            vec = vec + shifts @ cell
        dist = torch.sqrt((vec * vec).sum(-1) + 1e-12)
        phi = self.pair_basis(dist) * self.pair_envelope(dist).unsqueeze(-1)
        # (atoms, rank, basis) with the basis index innermost: the per-pair products and the sum
        # over the rank then run over contiguous memory
        a = self.pair_coeff(x[:, : self.channels]).view(-1, self.pair_k, self.pair_m).transpose(1, 2).contiguous()
        coeff = (a.index_select(0, pairs[0]) * a.index_select(0, pairs[1])).sum(1)
        half = 0.5 * (phi * coeff).sum(-1) / self.pair_norm
        out = torch.zeros(n_grains, dtype=u.dtype, device=u.device)
        return out.index_add(0, grain_index[pairs[0]], half).index_add(0, grain_index[pairs[1]], half)

    def forward(self, pos: Tensor, species: Tensor, grain_index: Tensor, grain_type: Tensor,
                cell: Optional[Tensor] = None, compute_forces: bool = True,
                create_graph: bool = False, compute_virial: bool = False) -> Dict[str, Tensor]:
        self._check_inputs(pos, species, grain_index, grain_type, cell)
        return self.evaluate(pos, species, grain_index, grain_type, cell, compute_forces, create_graph,
                             compute_virial, None)

    def evaluate(self, pos: Tensor, species: Tensor, grain_index: Tensor, grain_type: Tensor,
                 cell: Optional[Tensor], compute_forces: bool, create_graph: bool, compute_virial: bool,
                 padded: Optional[List[Tensor]]) -> Dict[str, Tensor]:
        """:meth:`forward` without its input checks.

        padded: None (find the edges by the exact search, :meth:`edges`, with the grain-width
        check: both read values back to the host), or fixed-size edge lists
        ``[intra, inter, inter_mask, contact, contact_mask]`` from :mod:`cgaa.core.padded` (needs
        a ``cell``): ``intra`` (2, Ei) intra-grain pairs i < j (any distance: the envelope zeroes
        those beyond ``intra_cutoff``), ``inter`` (2, Cg) grain pairs (both orders) and
        ``contact`` (2, Cc) atom pairs of different grains (each once) padded to a capacity, with
        boolean masks of the valid entries. Valid entries farther apart than the cutoff are allowed
        (a skin); the lattice shift of each pair is recomputed here by minimum image, and masked
        entries get the shift (1, 0, 0) of a self pair, a vector longer than twice the cutoff,
        so they add exactly zero energy and zero (finite) gradient. No host reads on this path.
        """
        dtype = self.masses.dtype
        in_dtype = pos.dtype
        x = pos.to(dtype)
        if compute_forces and not x.requires_grad:
            x = x.detach().requires_grad_(True)
        box: Optional[Tensor] = None
        if cell is not None:
            box = cell.to(dtype)
        g = grain_type.shape[0]
        # intra-grain atom pairs, built once for the width check and the intra-grain layers
        pairs: Optional[Tensor] = None
        if padded is None:
            if box is not None or self.n_intra > 0:
                pairs = intra_pairs(grain_index, g)
            r, u, m, mg = self.grain_geometry(x, species, grain_index, g, box, pairs)
        else:
            m = self.masses[species]
            r, u, mg = grain_centers(x, m, grain_index, g, box)
        if self.direct and compute_forces:
            r = r.detach().requires_grad_(True)
            u = u.detach()
        # molecular virial: a homogeneous strain of the grain centres and the box, u held fixed
        strain: Optional[Tensor] = None
        if compute_virial and compute_forces and box is not None:
            eps = torch.zeros((3, 3), dtype=dtype, device=x.device).requires_grad_(True)
            r = r + r @ eps.t()
            box = box + box @ eps.t()
            strain = eps
        if padded is None:
            e_g, h, feats = self.energy_from_geometry(r, u, species, grain_index, grain_type, box, pairs)
        else:
            if box is None:
                raise RuntimeError("padded edge lists need a periodic box")
            inter_shifts = masked_shifts(r, padded[1], padded[2], box)
            contact_shifts = masked_shifts(r[grain_index] + u, padded[3], padded[4], box)
            e_g, h, feats = self.energy_from_edges(r, u, species, grain_index, grain_type, box, padded[0],
                                                   padded[1], inter_shifts, padded[3], contact_shifts)
        energy = e_g.sum()
        out: Dict[str, Tensor] = {"energy": energy.to(in_dtype), "grain_energies": e_g.to(in_dtype)}
        if not compute_forces:
            return out
        w = (m / mg[grain_index]).unsqueeze(1)
        wrt = [r] if self.direct else [x]
        if strain is not None:
            wrt.append(strain)
        grads = torch.autograd.grad([energy], wrt, create_graph=create_graph, allow_unused=True)
        g0 = grads[0]
        if g0 is None:
            g0 = torch.zeros_like(wrt[0])
        if self.direct:
            f_grain = -g0
            v = self.intra_head(h[grain_index], feats)
            # index_add, not bincount: bincount reads its maximum back to the host on CUDA
            counts = torch.zeros(g, dtype=v.dtype, device=v.device).index_add(
                0, grain_index, torch.ones_like(v[:, 0])).unsqueeze(1)
            mean = torch.zeros((g, 3), dtype=v.dtype, device=v.device).index_add(0, grain_index, v) / counts
            f_intra = v - mean[grain_index]
            f_inter = w * f_grain[grain_index]
            forces = f_inter + f_intra
        else:
            forces = -g0
            f_grain = torch.zeros((g, 3), dtype=forces.dtype, device=forces.device).index_add(
                0, grain_index, forces)
            f_inter = w * f_grain[grain_index]
            f_intra = forces - f_inter
        out["forces"] = forces.to(in_dtype)
        out["forces_inter"] = f_inter.to(in_dtype)
        out["forces_intra"] = f_intra.to(in_dtype)
        out["grain_forces"] = f_grain.to(in_dtype)
        if strain is not None:
            gs = grads[1]
            if gs is None:
                gs = torch.zeros_like(strain)
            w_mol = -gs
            out["virial_mol"] = w_mol.to(in_dtype)
            out["virial"] = (w_mol + forces.t() @ u).to(in_dtype)
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_json(config: ModelConfig) -> str:
    """The config as canonical JSON (for metadata and checkpoints)."""
    return json.dumps(config.to_dict(), sort_keys=True)

