// Kubernetes resource quantities ("10Gi", "500m", "1e3", 4096): the syntax the API server accepts, and
// their value as a number, so that the operator can compare sizes (a volume smaller than the space quota,
// a request above its limit) before the API server or the kubelet refuses the objects built from them.

/** The API server's quantity syntax (resource.Quantity), as the pattern an OpenAPI schema can carry. */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

const QUANTITY_RE = new RegExp(QUANTITY_PATTERN);

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/**
 * The value of a quantity in its base unit (bytes for memory and storage, cores for cpu), or undefined when
 * the text is not a quantity. A double is precise enough for the comparisons the operator makes.
 */
export function parseQuantity(quantity: string | number): number | undefined {
  if (typeof quantity === 'number') return Number.isFinite(quantity) ? quantity : undefined;
  if (!QUANTITY_RE.test(quantity)) return undefined;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$/.exec(quantity);
  if (!m) return undefined;
  const [, digits, suffix] = m;
  const value = Number(digits);
  if (suffix in BINARY) return value * BINARY[suffix];
  if (suffix in DECIMAL) return value * DECIMAL[suffix];
  // An exponent: "1e3", "5E-2".
  return value * 10 ** Number(suffix.slice(1));
}

/** "2 GiB", "512 MiB", "1000 bytes": a byte count for people. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${unit}`;
  }
  return `${bytes} bytes`;
}
