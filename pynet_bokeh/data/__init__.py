"""Data sets in the EBB! layout.

- `pynet_bokeh.data.ebb`: pairing by stem, validation, the streaming `tf.data` pipeline
  (`find_pairs`, `validate_pairs`, `ebb_dataset`, `ebb_eval_dataset`).
- `pynet_bokeh.data.synthetic`: generated scenes written in the same layout
  (`generate_dataset`, `ensure_synthetic`; `python -m pynet_bokeh.data.synthetic`).

Submodules are not imported here, so that importing one does not pull in the other's
dependencies.
"""
