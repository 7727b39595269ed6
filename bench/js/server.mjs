// Reference A2A server built on the official JS SDK (@a2a-js/sdk 1.3, A2A 1.0).
//
// Used by `python -m bench` as the `sdk-js` baseline. The agent does the same
// work as trio-a2a's echo agent (runtime/agents/echo.py) and
// bench/ref_sdk_server.py: publish the Task (SUBMITTED, history = [user
// message]), a WORKING status update, one text artifact echoing the user's
// text in --chunks pieces (default 3, append after the first), and COMPLETED.
//
//   node bench/js/server.mjs --port 8002 [--host 127.0.0.1] [--chunks 3]
import { randomUUID } from 'node:crypto';

import express from 'express';
import { TaskState } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { UserBuilder, agentCardHandler, jsonRpcHandler } from '@a2a-js/sdk/server/express';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '8002'));
const chunks = Math.max(1, Number(arg('chunks', '3')));
const url = `http://${host}:${port}/`;

// Same split as trio-a2a's runtime/agents/echo.py: at most n non-empty pieces.
function splitChunks(text, n) {
  if (!text) return [''];
  const size = Math.ceil(text.length / n);
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

const textPart = (text) => ({
  content: { $case: 'text', value: text },
  metadata: undefined,
  filename: '',
  mediaType: 'text/plain',
});

class EchoExecutor {
  async execute(ctx, eventBus) {
    const msg = ctx.userMessage;
    const taskId = ctx.taskId;
    const contextId = ctx.contextId;
    const now = () => new Date().toISOString();
    if (!ctx.task) {
      eventBus.publish(
        AgentEvent.task({
          id: taskId,
          contextId,
          status: { state: TaskState.TASK_STATE_SUBMITTED, timestamp: now(), message: undefined },
          artifacts: [],
          history: [msg],
          metadata: undefined,
        }),
      );
    }
    eventBus.publish(
      AgentEvent.statusUpdate({
        taskId,
        contextId,
        status: { state: TaskState.TASK_STATE_WORKING, timestamp: now(), message: undefined },
        metadata: undefined,
      }),
    );
    const text = msg.parts
      .filter((p) => p.content?.$case === 'text')
      .map((p) => p.content.value)
      .join('\n');
    const pieces = splitChunks(text, chunks);
    const artifactId = randomUUID();
    pieces.forEach((piece, i) => {
      eventBus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact: {
            artifactId,
            name: 'echo',
            description: '',
            parts: [textPart(piece)],
            metadata: undefined,
            extensions: [],
          },
          append: i > 0,
          lastChunk: i === pieces.length - 1,
          metadata: undefined,
        }),
      );
    });
    eventBus.publish(
      AgentEvent.statusUpdate({
        taskId,
        contextId,
        status: { state: TaskState.TASK_STATE_COMPLETED, timestamp: now(), message: undefined },
        metadata: undefined,
      }),
    );
  }

  cancelTask = async () => {};
}

const card = {
  name: 'sdk-js echo',
  description: '@a2a-js/sdk reference echo agent (benchmark baseline)',
  supportedInterfaces: [{ url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' }],
  provider: undefined,
  version: '1.0.0',
  capabilities: { streaming: true, pushNotifications: false, extensions: [] },
  securitySchemes: {},
  securityRequirements: [],
  defaultInputModes: ['text/plain'],
  defaultOutputModes: ['text/plain'],
  skills: [
    {
      id: 'echo',
      name: 'echo',
      description: 'Echoes the input text',
      tags: ['echo'],
      examples: [],
      inputModes: [],
      outputModes: [],
      securityRequirements: [],
    },
  ],
  signatures: [],
};

const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new EchoExecutor());

const app = express();
app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler }));
app.use('/', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));

const server = app.listen(port, host, () => {
  console.log(`sdk-js echo listening on ${url}`);
});
server.keepAliveTimeout = 75_000;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
