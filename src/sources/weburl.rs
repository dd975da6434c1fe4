//! Web URLs: from a git remote URL to a browsable link to one file at one commit.
