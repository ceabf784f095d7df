"""Model fitting: samples -> segments -> guaranteed envelope and statistical estimate."""

from ._assumptions import ASSUMPTION_SPECS, Assumptions, AssumptionSpec
from ._fit import fit_table
from ._samples import SampleArrays, as_arrays

__all__ = ["ASSUMPTION_SPECS", "AssumptionSpec", "Assumptions", "SampleArrays", "as_arrays",
           "fit_table"]
