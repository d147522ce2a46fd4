"""The Streamlit dashboard and its HTTP client for the API."""
