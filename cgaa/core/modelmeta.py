"""The metadata entry of a deployed model file, read without torch.

A deployed model (:mod:`cgaa.core.modelfile`) is a TorchScript zip archive whose extra file
``cgaa_metadata.json`` holds its config and provenance. Reading that entry needs only
:mod:`zipfile`, so torch-free stages (analysis) can ask a model file for, e.g., its contact floor.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

#: Name of the metadata entry in a deployed model archive.
METADATA_FILE = "cgaa_metadata.json"


def archive_metadata(path: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The metadata dict of the deployed model archive at ``path``, or None when the file is not
    such an archive (missing, not a zip, no single metadata entry, not a JSON object)."""
    try:
        with zipfile.ZipFile(str(path)) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/" + METADATA_FILE)]
            if len(names) == 1:
                meta = json.loads(z.read(names[0]).decode("utf-8"))
                if isinstance(meta, dict):
                    return meta
    except (OSError, ValueError, zipfile.BadZipFile):
        pass
    return None
