"""Writes VGG-19 weight files in the two real layouts, with random weights, for tests.

- Keras legacy HDF5 (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`): root attributes
  `layer_names`, `backend`, `keras_version`; one group per layer (input and pooling layers
  included, with no weights) whose `weight_names` attribute lists `<layer>/kernel:0`,
  `<layer>/bias:0`; Caffe weights, i.e. the first conv expects BGR input.
- MatConvNet (`imagenet-vgg-verydeep-19.mat`): `layers` is a 1 x N cell array of structs with
  `name`, `type` and, for convs, `weights` = {kernel [width, height, in, out], bias [out x 1]};
  RGB input, plus `meta.normalization`.

`random_vgg19_weights` draws one set of weights (Keras layout); the .mat file gets the same
network re-expressed in MatConvNet's conventions (first conv's input channels reversed to RGB,
kernels' spatial axes swapped), so both files must give the same features.
"""

import h5py
import numpy as np

BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def random_vgg19_weights(seed=0):
    """{keras layer name: (kernel [h, w, in, out], bias)}, He-scaled so features stay O(1)."""
    rng = np.random.default_rng(seed)
    out, cin = {}, 3
    for block, n, cout in BLOCKS:
        for i in range(1, n + 1):
            std = np.sqrt(2.0 / (9 * cin))
            kernel = (rng.standard_normal((3, 3, cin, cout), dtype=np.float32) * std).astype(
                np.float32
            )
            bias = (rng.standard_normal(cout, dtype=np.float32) * 0.01).astype(np.float32)
            out[f"block{block}_conv{i}"] = (kernel, bias)
            cin = cout
    return out


def write_keras_h5(path, weights):
    names = ["input_1"]
    for block, n, _ in BLOCKS:
        names += [f"block{block}_conv{i}" for i in range(1, n + 1)] + [f"block{block}_pool"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in names:
            group = f.create_group(name)
            if name in weights:
                kernel, bias = weights[name]
                wnames = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
                group.attrs["weight_names"] = np.array(wnames)
                group.create_dataset(f"{name}/kernel:0", data=kernel)
                group.create_dataset(f"{name}/bias:0", data=bias)
            else:
                group.attrs["weight_names"] = np.array([], dtype="S1")


def write_matconvnet(path, weights):
    import scipy.io

    layers = []
    for block, n, _ in BLOCKS:
        for i in range(1, n + 1):
            kernel, bias = weights[f"block{block}_conv{i}"]
            if block == 1 and i == 1:
                kernel = kernel[:, :, ::-1, :]  # Caffe BGR -> MatConvNet RGB
            cell = np.empty((1, 2), dtype=object)
            cell[0, 0] = np.ascontiguousarray(np.transpose(kernel, (1, 0, 2, 3)))
            cell[0, 1] = bias.reshape(-1, 1)
            layers.append(
                {
                    "name": f"conv{block}_{i}",
                    "type": "conv",
                    "weights": cell,
                    "stride": np.array([[1, 1]], np.float64),
                    "pad": np.array([[1, 1, 1, 1]], np.float64),
                }
            )
            layers.append({"name": f"relu{block}_{i}", "type": "relu"})
        layers.append(
            {
                "name": f"pool{block}",
                "type": "pool",
                "method": "max",
                "pool": np.array([[2, 2]], np.float64),
                "stride": np.array([[2, 2]], np.float64),
                "pad": np.array([[0, 0, 0, 0]], np.float64),
            }
        )
    cells = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cells[0, i] = layer
    meta = {
        "normalization": {"averageImage": np.array([123.68, 116.779, 103.939]).reshape(1, 1, 3)}
    }
    scipy.io.savemat(path, {"layers": cells, "meta": meta})
