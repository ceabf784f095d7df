"""Model fitting: samples -> segments -> guaranteed envelope and statistical estimate."""

from .._model._assumptions import ASSUMPTION_SPECS, Assumptions, AssumptionSpec
from .._model._samples import SampleArrays, as_arrays
from ._fit import fit_table

__all__ = ["ASSUMPTION_SPECS", "AssumptionSpec", "Assumptions", "SampleArrays", "as_arrays",
           "fit_table"]
