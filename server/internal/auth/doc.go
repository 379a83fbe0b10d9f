// Package auth turns credentials into a Principal: argon2id password hashes, HS256
// JWTs for sessions and personal access tokens, and the HTTP middleware that reads a
// bearer token or the access_token cookie. It decides who the caller is, never what
// they may do — that is package access.
package auth
