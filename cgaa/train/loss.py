"""Model outputs of a frame, its loss and accumulated error metrics (eV, eV/Å, bar)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from cgaa.train.config import LossConfig
from cgaa.core.units import ev_per_a3_to_bar
from cgaa.data.dataset import model_inputs


def predict(model, ref: Dict[str, torch.Tensor], create_graph: bool = False,
            virial: bool = True) -> Dict[str, torch.Tensor]:
    """The model's outputs for a frame of :func:`cgaa.data.dataset.frame_tensors`; with
    ``virial`` also its molecular virial when the frame has a reference one."""

    if virial and "virial_mol" in ref and accepts_virial(model):
        return model(**model_inputs(ref), create_graph=create_graph, compute_virial=True)
    return model(**model_inputs(ref), create_graph=create_graph)


def accepts_virial(model) -> bool:
    """Whether ``model`` (eager or TorchScript) takes ``compute_virial`` (models deployed
    before cgaa had virials do not)."""
    if isinstance(model, torch.jit.ScriptModule):
        return any(a.name == "compute_virial" for a in model.forward.schema.arguments)
    import inspect

    return "compute_virial" in inspect.signature(model.forward).parameters


def check_virial_labels(frames, weights: LossConfig) -> None:
    """ValueError naming the first frame without a stress label when the loss weights the virial."""
    if weights.virial <= 0:
        return
    for f in frames:
        if f.stress is None or f.cell is None:
            raise ValueError(f"{f.source}: no stress label (REF_stress) but loss.virial = {weights.virial}: "
                             "label the frames with stress (cgaa label ... --stress, or cgaa sample) "
                             "or set loss.virial: 0")


def frame_loss(out: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor],
               weights: LossConfig) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted loss of one frame.

    energy: (ΔE / N_atoms)² in (eV/atom)²; forces_inter: mean over grains and components
    of the squared error of the net grain force; forces_intra: mean over atoms and
    components of the squared error of the intra-grain force; virial (when both ``out``
    and ``ref`` have ``virial_mol``, else no term: :func:`check_virial_labels` guards the
    training set): mean over the 9 components of (ΔW_mol / N_atoms)².
    """
    de = (out["energy"].double() - ref["energy"]) / ref["n_atoms"]
    l_e = (de * de).to(out["forces"].dtype)
    l_inter = ((out["grain_forces"] - ref["grain_forces"]) ** 2).mean()
    l_intra = ((out["forces_intra"] - ref["forces_intra"]) ** 2).mean()
    loss = weights.energy * l_e + weights.forces_inter * l_inter + weights.forces_intra * l_intra
    parts = {"energy": float(l_e.detach()), "forces_inter": float(l_inter.detach()),
             "forces_intra": float(l_intra.detach())}
    if "virial_mol" in out and "virial_mol" in ref:
        dw = (out["virial_mol"] - ref["virial_mol"]) / ref["n_atoms"].to(out["virial_mol"].dtype)
        l_vir = (dw * dw).mean()
        parts["virial"] = float(l_vir.detach())
        if weights.virial > 0:
            loss = loss + weights.virial * l_vir
    return loss, parts


class ErrorAccumulator:
    """Energy and force errors over many frames, overall, per element and per grain type."""

    def __init__(self, element_names: List[str], type_names: List[str], keep_values: bool = False):
        self.element_names = element_names
        self.type_names = type_names
        self.keep = keep_values
        self.e_err: List[float] = []
        self.sq = {k: 0.0 for k in ("forces", "forces_inter", "forces_intra", "grain_forces")}
        self.ab = dict(self.sq)
        self.cnt = dict(self.sq)
        self.ref_sq = dict(self.sq)  # Σ ref² (force components have zero mean by symmetry)
        self.by_el = np.zeros((len(element_names), 3))   # sum sq, sum abs, count
        self.by_type = np.zeros((len(type_names), 3))
        self.net_by_type = np.zeros((len(type_names), 3))  # grain net forces: sum sq, sum abs, count
        self.values: Dict[str, List[np.ndarray]] = {}
        self.vir_err: List[np.ndarray] = []   # ΔW_mol / N (eV/atom), 9 components per frame
        self.p_err: List[float] = []          # molecular pressure error (bar)

    def add(self, out: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor]) -> None:
        n = float(ref["n_atoms"])
        pe = float(out["energy"].detach()) / n
        re = float(ref["energy"]) / n
        self.e_err.append(pe - re)
        for k in self.sq:
            d = (out[k].detach() - ref[k]).double().cpu().numpy()
            self.sq[k] += float((d * d).sum())
            self.ref_sq[k] += float((ref[k].double() ** 2).sum())
            self.ab[k] += float(np.abs(d).sum())
            self.cnt[k] += d.size
            if self.keep:
                self.values.setdefault(k + "_pred", []).append(out[k].detach().cpu().numpy().ravel())
                self.values.setdefault(k + "_ref", []).append(ref[k].cpu().numpy().ravel())
        if self.keep:
            self.values.setdefault("energy_pred", []).append(np.array([pe]))
            self.values.setdefault("energy_ref", []).append(np.array([re]))
        if "virial_mol" in out and "virial_mol" in ref:
            dw = (out["virial_mol"].detach() - ref["virial_mol"]).double().cpu().numpy()
            self.vir_err.append(dw.ravel() / n)
            # P_mol = (N_grains k T + tr W_mol / 3) / V: the kinetic part is exact, so ΔP = tr ΔW / 3V
            self.p_err.append(float(ev_per_a3_to_bar(np.trace(dw) / (3.0 * float(ref["volume"])))))
            if self.keep:
                vol = float(ref["volume"])
                for key, w in (("pressure_pred", out["virial_mol"]), ("pressure_ref", ref["virial_mol"])):
                    tr = float(np.trace(w.detach().double().cpu().numpy()))
                    self.values.setdefault(key, []).append(np.array([ev_per_a3_to_bar(tr / (3.0 * vol))]))
        d = (out["forces"].detach() - ref["forces"]).double().cpu().numpy()
        sp = ref["species"].cpu().numpy()
        atom_type = ref["grain_type"][ref["grain_index"]].cpu().numpy()
        dg = (out["grain_forces"].detach() - ref["grain_forces"]).double().cpu().numpy()
        for table, idx, diff in ((self.by_el, sp, d), (self.by_type, atom_type, d),
                                 (self.net_by_type, ref["grain_type"].cpu().numpy(), dg)):
            np.add.at(table[:, 0], idx, (diff * diff).sum(1))
            np.add.at(table[:, 1], idx, np.abs(diff).sum(1))
            np.add.at(table[:, 2], idx, 3)

    def summary(self) -> Dict[str, object]:
        """Metrics with units in their names: energy meV/atom, forces eV/Å."""
        e = np.array(self.e_err)
        out: Dict[str, object] = {
            "n_frames": int(len(e)),
            "energy_rmse_meV_per_atom": float(np.sqrt((e ** 2).mean()) * 1000) if len(e) else float("nan"),
            "energy_mae_meV_per_atom": float(np.abs(e).mean() * 1000) if len(e) else float("nan"),
            # signed, model − reference: an offset between data sets shows which states the model favours
            "energy_mean_error_meV_per_atom": float(e.mean() * 1000) if len(e) else float("nan"),
        }
        if self.p_err:
            v = np.concatenate(self.vir_err)
            p = np.array(self.p_err)
            out["n_frames_with_stress"] = int(len(p))
            out["virial_mol_rmse_meV_per_atom"] = float(np.sqrt((v ** 2).mean()) * 1000)
            out["pressure_rmse_bar"] = float(np.sqrt((p ** 2).mean()))
            out["pressure_mae_bar"] = float(np.abs(p).mean())
            out["pressure_mean_error_bar"] = float(p.mean())
        label = {"forces": "forces", "forces_inter": "forces_inter", "forces_intra": "forces_intra",
                 "grain_forces": "grain_net_forces"}
        for k, name in label.items():
            c = max(self.cnt[k], 1)
            out[f"{name}_rmse_eV_per_A"] = float(np.sqrt(self.sq[k] / c))
            out[f"{name}_mae_eV_per_A"] = float(self.ab[k] / c)
            # fraction of the reference variance captured, 1 − SSE/Σref² (components average to 0)
            out[f"{name}_r2"] = float(1.0 - self.sq[k] / self.ref_sq[k]) if self.ref_sq[k] > 0 else float("nan")
            out[f"{name}_reference_rms_eV_per_A"] = float(np.sqrt(self.ref_sq[k] / c))
        for key, table, names in (("per_element", self.by_el, self.element_names),
                                  ("per_grain_type", self.by_type, self.type_names)):
            out[key] = {
                names[i]: {"forces_rmse_eV_per_A": float(np.sqrt(table[i, 0] / table[i, 2])),
                           "forces_mae_eV_per_A": float(table[i, 1] / table[i, 2])}
                for i in range(len(names)) if table[i, 2] > 0
            }
        # the net force on each kind of molecule or ion (what moves it: transport)
        t = self.net_by_type
        for i, name in enumerate(self.type_names):
            if t[i, 2] > 0:
                out["per_grain_type"].setdefault(name, {}).update(
                    net_force_rmse_eV_per_A=float(np.sqrt(t[i, 0] / t[i, 2])),
                    net_force_mae_eV_per_A=float(t[i, 1] / t[i, 2]))
        return out

    def arrays(self, key: str) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Concatenated (reference, predicted) values kept for parity plots."""
        if key + "_ref" not in self.values:
            return None, None
        return np.concatenate(self.values[key + "_ref"]), np.concatenate(self.values[key + "_pred"])
