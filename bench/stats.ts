// Figures from samples: percentiles, medians and rounding, as every row of the report gives them.
/** p50, p99 and max of lags in seconds, to the hundredth. */
export function secondsSummary(lags: number[]): { p50: number; p99: number; max: number } {
  return { p50: round(percentile(lags, 50), 2), p99: round(percentile(lags, 99), 2), max: round(Math.max(...lags), 2) };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
export const summary = (values: number[]) => ({
  n: values.length,
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: values.length ? Math.max(...values) : NaN,
});
export const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
