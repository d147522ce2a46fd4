"""Dashboard sections, one module each; every one talks to the API through services.ui.client."""
