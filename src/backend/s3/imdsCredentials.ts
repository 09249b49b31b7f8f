// Credentials of an EC2 instance role from the instance metadata service (--accessEC2IAM), with
// IMDSv2 session tokens on request (--accessEC2IAM-IMDSv2). The S3 client calls the provider again
// before the returned expiration, so credentials are refreshed ahead of expiry.

import type * as Http from 'node:http';

export interface ImdsOptions {
  /** Role name; undefined = the one role attached to the instance. */
  readonly role: string | undefined;
  readonly imdsV2: boolean;
  readonly timeoutMs: number;
  /** Default: $AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254. */
  readonly endpoint?: string;
}

export interface RoleCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string | undefined;
  readonly expiration: Date | undefined;
}

async function request(url: URL, method: string, headers: Record<string, string>, timeoutMs: number): Promise<string> {
  // Loaded here: a mount that never asks the metadata service does not load node:http.
  const http: typeof Http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`instance metadata ${method} ${url.pathname}: HTTP ${res.statusCode}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`instance metadata ${url.pathname}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function fetchRoleCredentials(options: ImdsOptions): Promise<RoleCredentials> {
  const base = (options.endpoint ?? process.env['AWS_EC2_METADATA_SERVICE_ENDPOINT'] ?? 'http://169.254.169.254').replace(/\/+$/, '');
  const headers: Record<string, string> = {};
  if (options.imdsV2) {
    const token = await request(
      new URL(`${base}/latest/api/token`),
      'PUT',
      { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' },
      options.timeoutMs,
    );
    headers['x-aws-ec2-metadata-token'] = token.trim();
  }
  const listUrl = `${base}/latest/meta-data/iam/security-credentials/`;
  const role = options.role ?? (await request(new URL(listUrl), 'GET', headers, options.timeoutMs)).split('\n')[0]?.trim();
  if (!role) throw new Error('the instance has no IAM role attached');
  const json = JSON.parse(await request(new URL(listUrl + encodeURIComponent(role)), 'GET', headers, options.timeoutMs)) as {
    Code?: string;
    AccessKeyId?: string;
    SecretAccessKey?: string;
    Token?: string;
    Expiration?: string;
  };
  if ((json.Code !== undefined && json.Code !== 'Success') || !json.AccessKeyId || !json.SecretAccessKey) {
    throw new Error(`instance metadata gave no credentials for role ${role} (${json.Code ?? 'no code'})`);
  }
  return {
    accessKeyId: json.AccessKeyId,
    secretAccessKey: json.SecretAccessKey,
    sessionToken: json.Token,
    expiration: json.Expiration ? new Date(json.Expiration) : undefined,
  };
}
