"""Registry authentication: credential lookup and the HTTP auth flow."""
