// --ipTOS: the IP type of service of every S3 connection, as upstream sets it through libcurl.
// Node has no call for it, so the addon sets it on the socket's descriptor once connected: the
// handshake's packets go without it, everything a request sends carries it.

import type * as net from 'node:net';
import { setTypeOfService } from '../../native/addon';

/** Sets it once `socket` (TCP or TLS, whose handle shares the descriptor) is connected. */
export function applyTypeOfService(socket: net.Socket, tos: number, onError: (message: string) => void): void {
  const apply = (): void => {
    const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    try {
      if (fd === undefined || fd < 0) throw new Error('the connection has no descriptor to set it on');
      setTypeOfService(fd, tos);
    } catch (err) {
      onError(`--ipTOS: ${(err as Error).message}`);
    }
  };
  if (socket.connecting) socket.once('connect', apply);
  else apply();
}
