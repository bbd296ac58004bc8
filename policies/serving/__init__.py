"""Triton python-backend model code and the model-repository schema.

`preprocess.py`, `policy.py` and `postprocess.py` are each copied verbatim to
`<repository>/<model>/1/model.py` by `policies.repository`, so they import nothing from this
project: only numpy, onnxruntime and `triton_python_backend_utils` (which exists only inside the
Triton stub process; tests install a stand-in).
"""
