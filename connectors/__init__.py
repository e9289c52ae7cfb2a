"""Channel connectors: how events get from channel apps and providers into the channel topics.

* :mod:`connectors.collector` - the HTTP collector (``create_app``): ``POST /v1/events`` and the webhooks;
* :mod:`connectors.channels` - one adapter per channel (pure native-payload mapping + its I/O), and their registry;
* :mod:`connectors.publisher` - the process's one idempotent producer (Avro, murmur2 keys, bounded waits);
* :mod:`connectors.envelope` - partition key, defaults and validation shared by every connector;
* :mod:`connectors.importer` - resumable batch-file imports; :mod:`connectors.sdk` - the Python SDK;
* :mod:`connectors.config` - the collector's keys, secrets and limits; :mod:`connectors.errors` - typed errors.

Importing this package has no side effects (nothing connects, nothing is registered).
"""
