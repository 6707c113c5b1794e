"""OAuth 2 scopes and principals. Knows nothing about GraphQL.

The authorization server and token verification arrive with the OAuth issue;
this package already names every scope and says what an anonymous caller gets.
"""
