/** Load one page of a list from the API, with the offset in state and a reload. */
import { useCallback, useEffect, useState } from "react";

export interface PageOf<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export function usePage<T>(load: (offset: number) => Promise<PageOf<T>>, deps: unknown[] = []) {
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<PageOf<T> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const reload = useCallback(() => {
    setLoading(true);
    load(offset)
      .then((p) => {
        setPage(p);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [offset, ...deps]);
  useEffect(reload, [reload]);
  return { page, error, loading, offset, setOffset, reload };
}
