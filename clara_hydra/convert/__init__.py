"""The Clara -> Hydra converter: a compiler (parse -> typed model -> passes -> emit) with I/O only at the ends.

Public API: :func:`convert_path` (files in), :func:`convert_documents` (bytes in), :func:`write_tree`.
"""

from clara_hydra.convert.io import convert_path, write_tree
from clara_hydra.convert.pipeline import Conversion, Document, convert_documents

__all__ = ["Conversion", "Document", "convert_documents", "convert_path", "write_tree"]
