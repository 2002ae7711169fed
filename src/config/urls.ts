// URL handling with etcd's rules (client/pkg/types.NewURLs + net/url + net.SplitHostPort):
//  - scheme must be http, https, unix or unixs;
//  - http(s) URLs must be "host:port" and carry no path;
//  - a list is comma-separated, each item trimmed, and the result is sorted by its string form;
//  - listen URLs must bind an IP address or "localhost" (unix sockets excepted);
//  - advertise URLs must have a non-empty host and a port.
import { isIPv4, isIPv6 } from 'node:net';
import type { Parsed } from './goparse';

export type UrlScheme = 'http' | 'https' | 'unix' | 'unixs';

export interface ParsedUrl {
  scheme: UrlScheme;
  /** Hostname without IPv6 brackets (for unix URLs: the host part of the socket address). */
  host: string;
  /** Numeric port, or null when the URL has none (possible for unix URLs, or an empty "host:"). */
  port: number | null;
  /** Go's url.Host: "host:port", IPv6 bracketed. For unix URLs the socket address is hostPort + path. */
  hostPort: string;
  /** Path component (always "" for http/https). */
  path: string;
  /** Canonical string form (what etcd prints and sorts by). */
  href: string;
}

const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** net.SplitHostPort, returning Go's error text on failure. */
export function splitHostPort(hostport: string): Parsed<{ host: string; port: string }> {
  const addrErr = (why: string): Parsed<{ host: string; port: string }> => fail(`address ${hostport}: ${why}`);
  const i = hostport.lastIndexOf(':');
  if (i < 0) return addrErr('missing port in address');
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']');
    if (end < 0) return addrErr("missing ']' in address");
    if (end + 1 === hostport.length) return addrErr('missing port in address');
    if (end + 1 !== i) {
      return addrErr(hostport[end + 1] === ':' ? 'too many colons in address' : 'missing port in address');
    }
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return addrErr('too many colons in address');
  }
  if (hostport.slice(j).includes('[')) return addrErr("unexpected '[' in address");
  if (hostport.slice(k).includes(']')) return addrErr("unexpected ']' in address");
  return { ok: true, value: { host, port: hostport.slice(i + 1) } };
}

/** net.ParseIP: dotted-quad IPv4 (no leading zeros) or IPv6 without a zone. */
export function isGoIP(host: string): boolean {
  if (host.includes('%')) return false;
  return isIPv4(host) || isIPv6(host);
}

/** Parses one URL as etcd's types.NewURLs does for a single item. */
export function parseUrl(raw: string): Parsed<ParsedUrl> {
  const input = raw.trim();
  const sm = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(input);
  if (!sm) {
    if (input.startsWith(':')) return fail(`parse ${JSON.stringify(input)}: missing protocol scheme`);
    const firstSeg = input.split('/')[0];
    if (firstSeg.includes(':')) {
      return fail(`parse ${JSON.stringify(input)}: first path segment in URL cannot contain colon`);
    }
    return fail(`URL scheme must be http, https, unix, or unixs: ${input}`);
  }
  const scheme = sm[1].toLowerCase();
  let rest = input.slice(sm[0].length);
  let hostPort = '';
  let path = '';
  let suffix = '';
  // strip fragment and query (kept only in href)
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) {
    suffix = rest.slice(hashAt) + suffix;
    rest = rest.slice(0, hashAt);
  }
  const qAt = rest.indexOf('?');
  if (qAt >= 0) {
    suffix = rest.slice(qAt) + suffix;
    rest = rest.slice(0, qAt);
  }
  if (rest.startsWith('//')) {
    const authority = rest.slice(2).split('/')[0];
    path = rest.slice(2 + authority.length);
    const at = authority.lastIndexOf('@');
    hostPort = at >= 0 ? authority.slice(at + 1) : authority;
    const badChar = [...hostPort].find((ch) => ch.charCodeAt(0) < 0x21 || ch.charCodeAt(0) === 0x7f || '<>"{}|\\^`'.includes(ch));
    if (badChar) {
      return fail(`parse ${JSON.stringify(input)}: invalid character ${JSON.stringify(badChar)} in host name`);
    }
    if (hostPort.startsWith('[') && !hostPort.includes(']')) {
      return fail(`parse ${JSON.stringify(input)}: missing ']' in host`);
    }
    // net/url validates the port after the last colon (outside brackets)
    const portMatch = /:([^\]:]*)$/.exec(hostPort);
    if (portMatch && !hostPort.endsWith(']') && portMatch[1] !== '' && !/^[0-9]+$/.test(portMatch[1])) {
      return fail(`parse ${JSON.stringify(input)}: invalid port ${JSON.stringify(':' + portMatch[1])} after host`);
    }
  }
  // else: an opaque URL such as "unix:foo" has no host at all
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'unix' && scheme !== 'unixs') {
    return fail(`URL scheme must be http, https, unix, or unixs: ${input}`);
  }
  let host = hostPort;
  let port: number | null = null;
  if (scheme === 'http' || scheme === 'https') {
    const hp = splitHostPort(hostPort);
    if (!hp.ok) return fail(`URL address does not have the form "host:port": ${input}`);
    if (path !== '') return fail(`URL must not contain a path: ${input}`);
    host = hp.value.host;
    port = hp.value.port === '' ? null : Number(hp.value.port);
  } else {
    const hp = splitHostPort(hostPort);
    if (hp.ok) {
      host = hp.value.host;
      port = hp.value.port === '' || !/^[0-9]+$/.test(hp.value.port) ? null : Number(hp.value.port);
    }
  }
  const href = `${scheme}:${rest}${suffix}`;
  return { ok: true, value: { scheme: scheme as UrlScheme, host, port, hostPort, path, href } };
}

/** types.NewURLs: comma-separated list, parsed, sorted by string form (duplicates kept). */
export function parseUrlList(csv: string): Parsed<ParsedUrl[]> {
  const out: ParsedUrl[] = [];
  for (const item of csv.split(',')) {
    const u = parseUrl(item);
    if (!u.ok) return u;
    out.push(u.value);
  }
  out.sort((a, b) => (a.href < b.href ? -1 : a.href > b.href ? 1 : 0));
  return { ok: true, value: out };
}

/** flags.UniqueURLs: like parseUrlList but duplicates removed. */
export function parseUniqueUrlList(csv: string): Parsed<ParsedUrl[]> {
  const list = parseUrlList(csv);
  if (!list.ok) return list;
  const seen = new Set<string>();
  return { ok: true, value: list.value.filter((u) => (seen.has(u.href) ? false : (seen.add(u.href), true))) };
}

/** embed.checkBindURLs: error text as etcd's, or null. */
export function checkBindUrls(urls: ParsedUrl[]): string | null {
  for (const u of urls) {
    if (u.scheme === 'unix' || u.scheme === 'unixs') continue;
    const hp = splitHostPort(u.hostPort);
    if (!hp.ok) return hp.reason;
    if (hp.value.host === 'localhost') continue;
    if (!isGoIP(hp.value.host)) return `expected IP in URL for binding (${u.href})`;
  }
  return null;
}

/** embed.checkHostURLs: error text as etcd's, or null. */
export function checkHostUrls(urls: ParsedUrl[]): string | null {
  for (const u of urls) {
    const hp = splitHostPort(u.hostPort);
    if (!hp.ok) return hp.reason;
    if (hp.value.host === '') return `unexpected empty host (${u.href})`;
  }
  return null;
}

export interface InitialClusterMember {
  name: string;
  peerUrl: ParsedUrl;
}

/** types.NewURLsMap: "name=url,name=url,..."; a name may repeat (several peer URLs for one member).
 *  Entries keep their input order. */
export function parseInitialCluster(s: string): Parsed<InitialClusterMember[]> {
  const out: InitialClusterMember[] = [];
  for (const entry of s.split(',')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const name = eq >= 0 ? entry.slice(0, eq) : entry;
    const value = eq >= 0 ? entry.slice(eq + 1) : '';
    if (eq < 0) return fail(`member entry ${JSON.stringify(entry)} is not of the form name=peer-url`);
    const u = parseUrl(value);
    if (!u.ok) return fail(`member ${JSON.stringify(name)}: ${u.reason}`);
    out.push({ name, peerUrl: u.value });
  }
  return { ok: true, value: out };
}
