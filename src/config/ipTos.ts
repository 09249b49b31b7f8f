// --ipTOS values as upstream reads them.

/** Upstream's names for the values (IPTOS_* of <netinet/ip.h>). */
const NAMED: Readonly<Record<string, number>> = { lowdelay: 0x10, throughput: 0x08, reliability: 0x04, lowcost: 0x02, mincost: 0x02 };

/** A name above, or a number 0-255 (decimal, 0x hex or 0 octal, as strtol reads it); undefined if neither. */
export function parseTypeOfService(text: string): number | undefined {
  const named = NAMED[text];
  if (named !== undefined) return named;
  const n = /^0x[0-9a-f]+$/i.test(text)
    ? parseInt(text, 16)
    : /^0[0-7]+$/.test(text)
      ? parseInt(text, 8)
      : /^\d+$/.test(text)
        ? Number(text)
        : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : undefined;
}
