// Whether a DEA can take one more instance: enough free memory and disk, and the stack the
// droplet needs. A DEA without room stays silent on dea.discover.

export interface RoomRequest {
  memoryMb: number;
  diskMb: number;
  /** Empty: any stack. */
  stack: string;
}

export interface RoomOffer {
  availableMemoryMb: number;
  availableDiskMb: number;
  stacks: readonly string[];
}

/** What is missing, or null when the instance fits. */
export type NoRoom = "memory" | "disk" | "stack";

export function lacksRoom(request: RoomRequest, offer: RoomOffer): NoRoom | null {
  if (request.memoryMb > offer.availableMemoryMb) return "memory";
  if (request.diskMb > offer.availableDiskMb) return "disk";
  if (request.stack !== "" && !offer.stacks.includes(request.stack)) return "stack";
  return null;
}
