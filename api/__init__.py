"""The read side: unified customer state, carts and identities from Redis, live cart updates, the demo page."""
