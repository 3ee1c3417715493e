"""Local tooling that never ships to Lambda: template.yaml as data, the local stack on moto, the offline
invoke, the post-deploy SMS settings, the demo and the ``dunning`` command line."""
