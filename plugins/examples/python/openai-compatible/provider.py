"""componentize-py looks for the `stream-decoder` resource's class in a module named after the
exported interface (`provider`); the SDK's class decodes with the exported provider's decoder."""

from aigw_plugin.export import StreamDecoder

__all__ = ["StreamDecoder"]
