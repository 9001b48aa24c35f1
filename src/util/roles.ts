/**
 * `f` of every role in `roles`, keyed by role in that order: JSON reports list the graphs in the
 * order of the family's role list, so both families build their per-graph records here.
 */
export function byRole<R extends string, T>(roles: readonly R[], f: (role: R) => T): Record<R, T> {
  return Object.fromEntries(roles.map((r) => [r, f(r)])) as Record<R, T>;
}
