// S3's multi-object delete (POST ?delete): the request body, as upstream's http_io_bulk_zero
// writes it (no <Quiet>, no XML declaration: S3 then answers <Deleted> or <Error> for each key),
// and the answer's per-key errors, which upstream also turns into a failure of the whole call.

export interface DeleteError {
  readonly key: string;
  readonly code: string;
  readonly message: string;
}

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith('#x')) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith('#')) return String.fromCodePoint(parseInt(name.slice(1), 10));
    return ENTITIES[name] ?? whole;
  });
}

/** `<Delete><Object><Key>k</Key></Object>...</Delete>`; keys escaped (block keys never need it). */
export function multiDeleteBody(keys: readonly string[]): Buffer {
  return Buffer.from(`<Delete>${keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`, 'utf8');
}

const element = (xml: string, name: string): string | undefined => new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml)?.[1];

/** The <Error> entries of a DeleteResult; undefined when the answer is no DeleteResult at all. */
export function parseDeleteResult(body: Buffer): { readonly errors: readonly DeleteError[] } | undefined {
  const xml = body.toString('utf8');
  if (!/<DeleteResult[\s>/]/.test(xml)) return undefined;
  const errors: DeleteError[] = [];
  for (const [, entry = ''] of xml.matchAll(/<Error>([\s\S]*?)<\/Error>/g)) {
    errors.push({
      key: unescapeXml(element(entry, 'Key') ?? '(no key)'),
      code: unescapeXml(element(entry, 'Code') ?? '(no code)'),
      message: unescapeXml(element(entry, 'Message') ?? ''),
    });
  }
  return { errors };
}
