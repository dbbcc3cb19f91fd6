"""tf.data + tf.distribute: the preprocessor in Dataset.map outside the strategy scope,
the encoder (tf_keras + hub.KerasLayer) inside MirroredStrategy over 2 logical CPUs.

Runs in a subprocess: logical devices must be configured before TensorFlow initializes
its devices, which the test process already did.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

_SCRIPT = r'''
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401
import tf_keras

bundle = sys.argv[1]
sentences = ["a great movie", "a dull movie", "Berlin ist schön.", "東京は日本の首都です。"]
labels = [1, 0, 1, 0]
pre = hub.load(bundle + "/preprocessor")  # outside the strategy scope
dataset = tf.data.Dataset.from_tensor_slices((sentences, labels)).batch(4).map(
    lambda text, label: (pre(text), label))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
  inputs = {k: tf_keras.Input(shape=(None,), dtype=tf.int32, name=k)
            for k in ("input_word_ids", "input_mask", "input_type_ids")}
  encoder = hub.KerasLayer(bundle + "/encoder", trainable=True)
  pooled = encoder(inputs)["pooled_output"]
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(pooled))
  embedder = tf_keras.Model(inputs, pooled)
  model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
# Distributed inference (each replica gets half the batch) vs. the SavedModel called directly.
distributed = embedder.predict(dataset.map(lambda x, y: x), verbose=0)
direct = hub.load(bundle + "/encoder")(pre(tf.constant(sentences)))["pooled_output"].numpy()
variables = encoder.trainable_variables
before = [v.numpy().copy() for v in variables]
history = model.fit(dataset, epochs=1, verbose=0)
replica_values = [[t.numpy() for t in v.values] for v in variables]
print("RESULT " + json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "devices": sorted({t.device for v in variables for t in v.values}),
    "mirrored": all(isinstance(v, tf.distribute.DistributedValues) for v in variables),
    "inference_max_abs": float(np.abs(distributed - direct).max()),
    "inference_scale": float(np.abs(direct).max()),
    "loss": history.history["loss"],
    "variables": len(variables),
    "changed": sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)),
    "replicas_in_sync": all(np.array_equal(vals[0], vals[1]) for vals in replica_values),
}))
'''


@pytest.mark.parametrize("name", ["en_uncased", "multi_cased"])
def test_mirrored_strategy_two_cpus_one_training_step(name, tiny_bundle, multi_bundle, tmp_path):
  bundle = tiny_bundle if name == "en_uncased" else multi_bundle
  script = tmp_path / "distributed_step.py"
  script.write_text(_SCRIPT)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=testutil.REPO)
  proc = subprocess.run([sys.executable, str(script), bundle["dir"]], capture_output=True,
                        text=True, timeout=900, env=env, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  result = json.loads(line[len("RESULT "):])
  assert result["replicas"] == 2 and result["mirrored"]
  assert [d.rsplit("/", 1)[-1] for d in result["devices"]] == ["device:CPU:0", "device:CPU:1"]
  assert result["inference_max_abs"] <= 1e-6 * max(result["inference_scale"], 1.0)
  assert len(result["loss"]) == 1 and result["loss"][0] > 0
  # All but a few variables whose gradient is ~0 at random init (attention key bias).
  assert result["changed"] >= 0.85 * result["variables"] > 0
  assert result["replicas_in_sync"]
