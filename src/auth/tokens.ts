// etcd's "simple" tokens: 16 random letters, a dot, and the Raft index of the Authenticate entry that
// created them. Every member learns a token when it applies that entry, so any member accepts it. A
// token lives --auth-token-ttl seconds past its last use, and dies with its user's password or the user.
import * as crypto from 'node:crypto';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const PREFIX_LENGTH = 16;

interface TokenEntry {
  user: string;
  expiresAt: number;
}

export class SimpleTokens {
  private readonly tokens = new Map<string, TokenEntry>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The random part of a new token (the apply step appends the entry index). */
  static prefix(): string {
    let out = '';
    for (let i = 0; i < PREFIX_LENGTH; i++) out += LETTERS[crypto.randomInt(LETTERS.length)];
    return out;
  }

  assign(token: string, user: string): void {
    this.tokens.set(token, { user, expiresAt: this.now() + this.ttlMs });
  }

  /** The token's user, extending its life; undefined for an unknown or expired token. */
  lookup(token: string): string | undefined {
    const e = this.tokens.get(token);
    if (!e) return undefined;
    const now = this.now();
    if (e.expiresAt <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    e.expiresAt = now + this.ttlMs;
    return e.user;
  }

  /** Drops every token of a user (deleted, or a new password). */
  invalidateUser(user: string): void {
    for (const [t, e] of this.tokens) if (e.user === user) this.tokens.delete(t);
  }

  clear(): void {
    this.tokens.clear();
  }

  /** Drops expired tokens (called now and then so unused ones do not pile up). */
  sweep(): void {
    const now = this.now();
    for (const [t, e] of this.tokens) if (e.expiresAt <= now) this.tokens.delete(t);
  }
}
