"""Authyard operator: turns AuthServer and OAuthClient custom resources into running auth servers."""
