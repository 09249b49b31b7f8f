// The EC2 instance metadata service on loopback, for --accessEC2IAM tests (IMDSv1 and v2).
import * as http from 'node:http';

export async function startFakeImds({
  role = 'test-role',
  accessKeyId = 'AKIAIMDS',
  secretAccessKey = 'imds-secret',
  token = 'imds-session-token',
  requireV2 = false,
  expiresInMs = 6 * 3600e3,
} = {}) {
  const requests = [];
  const sessionToken = 'v2-token-123';
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    const send = (status, body = '') => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(body);
    };
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return send(400);
      return send(200, sessionToken);
    }
    if (requireV2 && req.headers['x-aws-ec2-metadata-token'] !== sessionToken) return send(401);
    const base = '/latest/meta-data/iam/security-credentials/';
    if (req.method === 'GET' && req.url === base) return send(200, `${role}\n`);
    if (req.method === 'GET' && req.url === base + role) {
      return send(
        200,
        JSON.stringify({
          Code: 'Success',
          LastUpdated: new Date().toISOString(),
          Type: 'AWS-HMAC',
          AccessKeyId: accessKeyId,
          SecretAccessKey: secretAccessKey,
          Token: token,
          Expiration: new Date(Date.now() + expiresInMs).toISOString(),
        }),
      );
    }
    return send(404);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { endpoint: `http://127.0.0.1:${port}`, port, requests, stop: () => new Promise((r) => server.close(r)) };
}
