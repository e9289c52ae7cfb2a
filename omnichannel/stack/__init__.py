"""omnichannel/stack."""
