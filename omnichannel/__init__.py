"""omnichannel."""
