// Exact money, as lease_core::money and lease_core::pricing compute it:
// integer nano-dollars (BigInt), never floating-point arithmetic.

/** Nano-dollars in one dollar. */
export const NANOS_PER_DOLLAR = 1_000_000_000n;

const MINUTES_PER_HOUR = 60n;
const MILLIS_PER_HOUR = 3_600_000n;
const AMOUNT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * `numerator / denominator` (BigInt, denominator > 0) rounded half away
 * from zero, like `Money::mul_ratio`.
 */
export function divRound(numerator, denominator) {
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  const twice = (remainder < 0n ? -remainder : remainder) * 2n;
  if (twice >= denominator) {
    return quotient + (numerator < 0n ? -1n : 1n);
  }
  return quotient;
}

/**
 * Nano-dollars of an amount as the API writes it: a JSON number of dollars
 * (`0.000333333`, `1e-7`) or a decimal string. The number's shortest decimal
 * text is read digit by digit, so no precision is lost for any amount the
 * server sends (at most nine decimal places).
 */
export function toNanos(value) {
  if (typeof value === 'bigint') return value;
  if (value === null || value === undefined) return 0n;
  const text = String(value).trim();
  const match = AMOUNT.exec(text);
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) {
    throw new RangeError(`not an amount: ${text}`);
  }
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  const digits = BigInt(`${whole}${fraction}` || '0');
  // value = digits × 10^(exponent − fraction.length); nanos = value × 10^9.
  const shift = 9 + Number(exponent) - fraction.length;
  const nanos = shift >= 0 ? digits * 10n ** BigInt(shift) : divRound(digits, 10n ** BigInt(-shift));
  return sign === '-' ? -nanos : nanos;
}

/** Price of `minutes` at `hourlyRate` nano-dollars: rate × minutes / 60 (pricing::estimate). */
export function estimate(hourlyRate, minutes) {
  return divRound(toNanos(hourlyRate) * BigInt(minutes), MINUTES_PER_HOUR);
}

/** Price of holding for `millis` at `hourlyRate`: rate × ms / 3 600 000 (pricing::accrued). */
export function accrued(hourlyRate, millis) {
  const held = BigInt(Math.max(0, Math.floor(millis)));
  return divRound(toNanos(hourlyRate) * held, MILLIS_PER_HOUR);
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function render(nanos, decimals, minDecimals) {
  const negative = nanos < 0n;
  const magnitude = negative ? -nanos : nanos;
  const units = divRound(magnitude, 10n ** BigInt(9 - decimals));
  const text = units.toString().padStart(decimals + 1, '0');
  const whole = text.slice(0, text.length - decimals);
  let fraction = text.slice(text.length - decimals).replace(/0+$/, '');
  fraction = fraction.padEnd(minDecimals, '0');
  const sign = negative && units !== 0n ? '-' : '';
  return `${sign}$${groupThousands(whole)}${fraction ? `.${fraction}` : ''}`;
}

/**
 * Dollars for people: cents for ordinary amounts, and at least three
 * significant digits for small ones, so a tiny cost is never `$0.00`
 * (0.000333333 → `$0.000333`, 0.08 → `$0.08`, 1.2345 → `$1.23`).
 */
export function formatDollars(value) {
  const nanos = toNanos(value);
  if (nanos === 0n) return '$0.00';
  const magnitude = nanos < 0n ? -nanos : nanos;
  const decimals = Math.min(9, Math.max(2, 12 - magnitude.toString().length));
  return render(nanos, decimals, 2);
}

/** The exact amount, every nano-dollar shown (`$0.000333333`). */
export function formatExact(value) {
  return render(toNanos(value), 9, 2);
}
