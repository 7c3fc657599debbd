/** `sluice status <id> --follow`: the pipeline's progress events, as they happen, until it closes. */
import { followProgress } from '../../client/follow';
import { withClient, type SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

/** Follows `workflowId`; exit 0 when it completed, 1 otherwise. With `json`, one object at the end. */
export async function followStatus(workflowId: string, json: boolean, setExit: SetExit): Promise<void> {
  await withClient(async (client) => {
    let events = 0;
    const end = await followProgress(client, workflowId, {
      onEvent: (e) => {
        events++;
        info(
          `${String(e.id).padStart(5)}  ${e.type.padEnd(8)}  stage=${e.stage}  ${e.done}/${e.total} done${e.failed ? `, ${e.failed} failed` : ''}`,
        );
      },
    });
    if (json) printJson({ ...end, events });
    else info(`${workflowId}  ${end.status}`);
    if (end.status !== 'COMPLETED') setExit(ExitCode.failed);
  });
}
